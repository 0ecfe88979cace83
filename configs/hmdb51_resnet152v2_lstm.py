r"""HMDB51 (51 classes, split 1): ImageNet ResNet152V2 on every frame, an LSTM(128), a dense head.

Build 16 frames spread evenly over each video, shorter side 128, then train (Keras downloads
the ResNet152V2 ImageNet weights, 230 MB, on first use):

    python -m pipeline.build --dataset hmdb51 --data_dir ~/data/hmdb51 --output_dir records \
        --sampling uniform --num_frames 16 --resize_shorter 128
    python -m trainers.train --config configs/hmdb51_resnet152v2_lstm.py \
        --workdir runs/hmdb51_resnet152v2_lstm

It prints ``[train] transfer_rnn on records/hmdb51/split1_uniform16_short128_jpeg90 (video,
51 classes), input (16, 112, 112, 3), precision mixed_float16, 1 replica(s), 223 steps x 30
epochs of batch 16`` on one GPU, one line per epoch, then ``[train] best epoch N: test
accuracy A, loss L (Ts training)``. A is not measured with this code yet: record it here.

transfer_rnn's "resnet152v2_lstm" variant: ResNet152V2 (every layer trained, Adam 1e-4 with a
cosine decay) → GlobalMaxPool → LSTM(128) → Dense 1024-512-128-64-64 relu (Dropout 0.5 after
the 1st and 3rd) → Dense 51. Training reads a random 112x112 crop of the 128-pixel frames,
flipped at random; evaluation the centre crop. 112 is 4x cheaper than 224; for 224 build with
``--resize_shorter 256`` and add ``--config.data.crop_size 224 --config.data.build_dir
records/hmdb51/split1_uniform16_short256_jpeg90``.

``:runlocal`` reads a 16-video-per-split build, 4 of the 16 frames resized to 64x64, random
initial weights (no download), 2 epochs of 2 steps of batch 2 (float32). Measured in one run of
``benchmarks/configs_bench.py`` (2-core CPU, 2026-12-01) on a stand-in dataset of synthetic
clips (51 classes): build 7 s, train 274 s, evaluate 34 s; test accuracy 0.00 at the best epoch
and test top-1 0.00 from ``trainers.evaluate`` (chance 0.02): smoke-run numbers, not a quality
claim:

    python -m pipeline.build --dataset hmdb51 --data_dir ~/data/hmdb51 --output_dir records \
        --sampling uniform --num_frames 16 --resize_shorter 128 \
        --max_examples_per_split 16 --config_name split1_uniform16_short128_jpeg90_tiny
    python -m trainers.train --config configs/hmdb51_resnet152v2_lstm.py:runlocal \
        --workdir /tmp/run_hmdb51_resnet152v2_lstm
    python -m trainers.evaluate --workdir /tmp/run_hmdb51_resnet152v2_lstm
"""
from configs import common

BUILD = "records/hmdb51/split1_uniform16_short128_jpeg90"


def get_config(arg=None):
    return common.resnet_clip_experiment(arg, build_dir=BUILD, num_classes=51, epochs=30)
