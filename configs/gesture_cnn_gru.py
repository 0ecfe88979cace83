r"""Smart-TV gestures: a small CNN on every frame, then a GRU (the case study's CNN+RNN).

Build the 11 frames the gesture models use (663 train + 100 val clips, 100x100), then train:

    python -m pipeline.build --dataset gestures --data_dir ~/data/Project_data \
        --output_dir records --sampling indices --indices 3,6,9,11,13,15,17,19,21,24,27 \
        --crop center_square --size 100x100
    python -m trainers.train --config configs/gesture_cnn_gru.py --workdir runs/gesture_cnn_gru

It prints ``[train] cnn_rnn on records/gestures/indices11_square_100x100_jpeg90 (video, 5
classes), input (11, 100, 100, 3), precision mixed_float16, 1 replica(s), 41 steps x 30 epochs
of batch 16`` (float32 on a CPU), one line per epoch, then ``[train] best epoch N: val
accuracy A, loss L (Ts training)``. A is not measured with this code yet: record it here.

Training flips clips left-right and then swaps Left_Swipe_new and Right_Swipe_new (the class
names of the gestures build).

``:runlocal`` reads a 16-clip-per-split build, frames resized to 64x64, 2 epochs of 2 steps of
batch 2 (float32). Measured in one run of ``benchmarks/configs_bench.py`` (2-core CPU,
2026-12-01) on a stand-in dataset of synthetic moving-shape clips (5 classes): build 7 s, train
27 s, evaluate 15 s; val accuracy 0.25 at the best epoch and val top-1 0.25 from
``trainers.evaluate`` (chance 0.20): smoke-run numbers, not a quality claim:

    python -m pipeline.build --dataset gestures --data_dir ~/data/Project_data \
        --output_dir records --sampling indices --indices 3,6,9,11,13,15,17,19,21,24,27 \
        --crop center_square --size 100x100 \
        --max_examples_per_split 16 --config_name indices11_square_100x100_jpeg90_tiny
    python -m trainers.train --config configs/gesture_cnn_gru.py:runlocal \
        --workdir /tmp/run_gesture_cnn_gru
    python -m trainers.evaluate --workdir /tmp/run_gesture_cnn_gru
"""
from configs import common


def get_config(arg=None):
    return common.gesture_experiment(
        arg, model_name="cnn_rnn",   # 4 conv blocks, Dense 64-128 per frame, GRU(32)
        model=dict(variant="gesture", rnn="gru", rnn_units=32), learning_rate=1e-3)
