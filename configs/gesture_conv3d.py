r"""Smart-TV gestures: a 3D CNN over the whole 11-frame clip (the case study's Conv3D).

Build the 11 frames the gesture models use (663 train + 100 val clips, 100x100), then train:

    python -m pipeline.build --dataset gestures --data_dir ~/data/Project_data \
        --output_dir records --sampling indices --indices 3,6,9,11,13,15,17,19,21,24,27 \
        --crop center_square --size 100x100
    python -m trainers.train --config configs/gesture_conv3d.py --workdir runs/gesture_conv3d

It prints ``[train] conv3d on records/gestures/indices11_square_100x100_jpeg90 (video, 5
classes), input (11, 100, 100, 3), precision mixed_float16, 1 replica(s), 41 steps x 30 epochs
of batch 16`` (float32 on a CPU), one line per epoch, then ``[train] best epoch N: val
accuracy A, loss L (Ts training)``. A is not measured with this code yet: record it here.

Conv3D 16-32-64-128 (3x3x3, BatchNorm, ReLU, MaxPool 2x2x2) → Flatten → Dense 128 → Dropout
0.5 → Dense 5. Training flips clips and then swaps Left_Swipe_new and Right_Swipe_new.

``:runlocal`` reads a 16-clip-per-split build, frames resized to 64x64, 2 epochs of 2 steps of
batch 2 (float32). Measured in one run of ``benchmarks/configs_bench.py`` (2-core CPU,
2026-12-01) on a stand-in dataset of synthetic moving-shape clips (5 classes): build 6 s, train
25 s, evaluate 16 s; val accuracy 0.25 at the best epoch and val top-1 0.25 from
``trainers.evaluate`` (chance 0.20): smoke-run numbers, not a quality claim:

    python -m pipeline.build --dataset gestures --data_dir ~/data/Project_data \
        --output_dir records --sampling indices --indices 3,6,9,11,13,15,17,19,21,24,27 \
        --crop center_square --size 100x100 \
        --max_examples_per_split 16 --config_name indices11_square_100x100_jpeg90_tiny
    python -m trainers.train --config configs/gesture_conv3d.py:runlocal \
        --workdir /tmp/run_gesture_conv3d
    python -m trainers.evaluate --workdir /tmp/run_gesture_conv3d
"""
from configs import common


def get_config(arg=None):
    return common.gesture_experiment(arg, model_name="conv3d", model=dict(variant="gesture"),
                                     learning_rate=1e-3)
