r"""Human action images (15 classes): ImageNet EfficientNetB3 and a regularised dense head.

The "Human Action Recognition (HAR)" image set (12,600 labelled images). Build with shorter side
256 and 10% of every class held out as val (stratified, the same on every machine), then train
(Keras downloads the EfficientNetB3 ImageNet weights, 43 MB, on first use):

    python -m pipeline.build --dataset images --data_dir ~/data/har --output_dir records \
        --resize_shorter 256 --val_fraction 0.1
    python -m trainers.train --config configs/image_efficientnetb3.py \
        --workdir runs/image_efficientnetb3

It prints ``[train] image_classifier on records/images/all_short256_jpeg90 (image, 15 classes),
input (224, 224, 3), precision mixed_float16, 1 replica(s), 354 steps x 40 epochs of batch 32``
on one GPU, one line per epoch, then ``[train] best epoch N: val accuracy A, loss L (Ts
training)``. L is the data loss (mean cross-entropy), the number ``python -m trainers.evaluate
--workdir runs/image_efficientnetb3`` reports for the val split it picks (the
``Testing_set.csv`` rows form an unlabelled test split); the dense head's L1/L2 penalties are
logged apart as ``regularization_loss``. A is not measured with this code yet: record it
here.

image_classifier's "efficientnet" defaults: EfficientNetB3 (global max pool) → BatchNorm →
Dense 256 relu (L2 0.016 kernel, L1 0.006 activity and bias) → Dropout 0.4 → Dense 15, trained
with Adamax 0.001 (the recipe's ``train_defaults``). Training reads random-resized 224x224
crops, flipped at random; evaluation the centre 224x224 crop. (EfficientNetB3's own size is
300: build with ``--resize_shorter 340`` and add ``--config.data.crop_size 300``.)

``:runlocal`` reads a 16-image-per-split build at 64x64, random initial weights (no download),
2 epochs of 2 steps of batch 2 (float32). Measured in one run of
``benchmarks/configs_bench.py`` (2-core CPU, 2026-12-01) on a stand-in dataset of noise images
(15 classes): build 6 s, train 152 s, evaluate 32 s; val accuracy 0.07 at the best epoch and
val top-1 0.07 from ``trainers.evaluate`` (chance 0.07): smoke-run numbers, not a quality
claim:

    python -m pipeline.build --dataset images --data_dir ~/data/har --output_dir records \
        --resize_shorter 256 --val_fraction 0.1 \
        --max_examples_per_split 16 --config_name all_short256_jpeg90_tiny
    python -m trainers.train --config configs/image_efficientnetb3.py:runlocal \
        --workdir /tmp/run_image_efficientnetb3
    python -m trainers.evaluate --workdir /tmp/run_image_efficientnetb3
"""
from configs import common

BUILD = "records/images/all_short256_jpeg90"


def get_config(arg=None):
    return common.experiment(
        model_name="image_classifier",
        model=dict(variant="efficientnet", weights="imagenet"),
        data=dict(build_dir=BUILD, eval_split="val", num_classes=15, modality="image",
                  num_frames=1, crop_size=224, crop="random_resized", flip=True),
        train=dict(batch_size=32, epochs=40, optimizer="adamax", learning_rate=1e-3,
                   schedule="plateau", early_stopping_patience=8),
        runlocal=common.parse_arg(arg),
        runlocal_overrides=dict(data=dict(build_dir=BUILD + "_tiny", crop_size=64,
                                          resize_shorter=64),
                                model=dict(weights=None)))
