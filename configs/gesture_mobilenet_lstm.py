r"""Smart-TV gestures: ImageNet MobileNet on every frame, then an LSTM(16) (transfer learning).

Build the 11 frames the gesture models use (663 train + 100 val clips, 100x100), then train
(Keras downloads the MobileNet ImageNet weights, 17 MB, on first use):

    python -m pipeline.build --dataset gestures --data_dir ~/data/Project_data \
        --output_dir records --sampling indices --indices 3,6,9,11,13,15,17,19,21,24,27 \
        --crop center_square --size 100x100
    python -m trainers.train --config configs/gesture_mobilenet_lstm.py \
        --workdir runs/gesture_mobilenet_lstm

It prints ``[train] transfer_rnn on records/gestures/indices11_square_100x100_jpeg90 (video, 5
classes), input (11, 100, 100, 3), precision mixed_float16, 1 replica(s), 41 steps x 30 epochs
of batch 16`` (float32 on a CPU), one line per epoch, then ``[train] best epoch N: val
accuracy A, loss L (Ts training)``. A is not measured with this code yet: record it here.

transfer_rnn's "mobilenet_gru" variant with an LSTM for the GRU: MobileNet (every layer
trained, learning rate 1e-4 so the ImageNet features survive) → BatchNorm → MaxPool 2x2 →
Dropout 0.3 → Flatten → LSTM(16) → Dropout 0.35 → Dense 64 → Dropout 0.4 → Dense 5.
Training flips clips and then swaps Left_Swipe_new and Right_Swipe_new.

``:runlocal`` reads a 16-clip-per-split build, frames resized to 64x64 (the smallest size that
leaves MobileNet a 2x2 map to pool), random initial weights (no download), 2 epochs of 2 steps
of batch 2 (float32). Measured in one run of ``benchmarks/configs_bench.py`` (2-core CPU,
2026-12-01) on a stand-in dataset of synthetic moving-shape clips (5 classes): build 6 s, train
57 s, evaluate 19 s; val accuracy 0.19 at the best epoch and val top-1 0.19 from
``trainers.evaluate`` (chance 0.20): smoke-run numbers, not a quality claim:

    python -m pipeline.build --dataset gestures --data_dir ~/data/Project_data \
        --output_dir records --sampling indices --indices 3,6,9,11,13,15,17,19,21,24,27 \
        --crop center_square --size 100x100 \
        --max_examples_per_split 16 --config_name indices11_square_100x100_jpeg90_tiny
    python -m trainers.train --config configs/gesture_mobilenet_lstm.py:runlocal \
        --workdir /tmp/run_gesture_mobilenet_lstm
    python -m trainers.evaluate --workdir /tmp/run_gesture_mobilenet_lstm
"""
from configs import common


def get_config(arg=None):
    return common.gesture_experiment(
        arg, model_name="transfer_rnn",
        model=dict(variant="mobilenet_gru", weights="imagenet", rnn="lstm"), learning_rate=1e-4)
