r"""UCF101 (101 classes, split 1): ImageNet ResNet152V2 on every frame, a GRU(128), a dense head.

Build 16 frames spread evenly over each video, shorter side 128, then train (Keras downloads
the ResNet152V2 ImageNet weights, 230 MB, on first use):

    python -m pipeline.build --dataset ucf101 --data_dir ~/data/UCF101 --output_dir records \
        --sampling uniform --num_frames 16 --resize_shorter 128 --val_fraction 0.1
    python -m trainers.train --config configs/ucf101_resnet152v2_gru.py \
        --workdir runs/ucf101_resnet152v2_gru
    python -m trainers.evaluate --workdir runs/ucf101_resnet152v2_gru --split test

It prints ``[train] transfer_rnn on records/ucf101/split1_uniform16_short128_jpeg90 (video,
101 classes), input (16, 112, 112, 3), precision mixed_float16, 1 replica(s), 596 steps x 20
epochs of batch 16`` on one GPU, one line per epoch, then ``[train] best epoch N: val
accuracy A, loss L (Ts training)``. The best epoch is picked on 'val': a tenth of each
class's train groups (``v_<Class>_gNN``, clips of one long video), held out whole by
``--val_fraction``; the official test split is left for the last command, the figure to
report. Neither is measured with this code yet: record them here.

transfer_rnn's "resnet152v2_lstm" variant with a GRU for the LSTM: ResNet152V2 (every layer
trained, Adam 1e-4 with a cosine decay) → GlobalMaxPool → GRU(128) → Dense 1024-512-128-64-64
relu (Dropout 0.5 after the 1st and 3rd) → Dense 101. Training reads a random 112x112 crop of
the 128-pixel frames, flipped at random; evaluation the centre crop. 112 is 4x cheaper than
224; for 224 build with ``--resize_shorter 256`` and add ``--config.data.crop_size 224
--config.data.build_dir records/ucf101/split1_uniform16_short256_jpeg90``.

``:runlocal`` reads a 16-video-per-split build, 4 of the 16 frames resized to 64x64, random
initial weights (no download), 2 epochs of 2 steps of batch 2 (float32). Measured in one run of
``benchmarks/configs_bench.py`` (2-core CPU, 2026-12-01) on a stand-in dataset of synthetic
clips (101 classes): build 5 s, train 259 s, evaluate 36 s; val accuracy 0.06 at the best epoch
and test top-1 0.00 from ``trainers.evaluate`` (chance 0.01): smoke-run numbers, not a quality
claim:

    python -m pipeline.build --dataset ucf101 --data_dir ~/data/UCF101 --output_dir records \
        --sampling uniform --num_frames 16 --resize_shorter 128 --val_fraction 0.1 \
        --max_examples_per_split 16 --config_name split1_uniform16_short128_jpeg90_tiny
    python -m trainers.train --config configs/ucf101_resnet152v2_gru.py:runlocal \
        --workdir /tmp/run_ucf101_resnet152v2_gru
    python -m trainers.evaluate --workdir /tmp/run_ucf101_resnet152v2_gru
"""
from configs import common

BUILD = "records/ucf101/split1_uniform16_short128_jpeg90"


def get_config(arg=None):
    config = common.resnet_clip_experiment(arg, build_dir=BUILD, num_classes=101, epochs=20,
                                           rnn="gru")
    config.data.eval_split = "val"      # the best epoch on held-out groups, not on test
    return config
