r"""The demo: the smart-TV CNN+GRU on the synthetic motion dataset of ``pipeline.demo``.

    python -m pipeline.demo --output_dir demo_out        # builds demo_out/records/ucf101/demo
    python -m trainers.train --config configs/demo_cnn_gru.py --workdir demo_out/run

Five classes that differ only in motion (swipe left/right, move up/down, stay
still), 16 frames of 64x64. Prints per-epoch metrics and ends with the test
accuracy of the best epoch (see README.md for the measured figure).
"""
from configs import common


def get_config(arg=None):
    return common.experiment(
        model_name="cnn_rnn",
        model=dict(rnn="gru", rnn_units=32),
        data=dict(build_dir="demo_out/records/ucf101/demo", num_classes=5, num_frames=16,
                  sampling="uniform", crop_size=64, crop="center"),
        train=dict(batch_size=8, epochs=40, learning_rate=2e-3, early_stopping_patience=10,
                   schedule="constant"),
        runlocal=common.parse_arg(arg))
