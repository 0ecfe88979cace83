r"""Pose tremor detection: a label per frame from OpenPose keypoints, 0.8 LSTM + 0.2 BiLSTM.

Your own recordings: OpenPose JSON per frame (``--write_json``), the matching videos (they
give the frame size and rate), and a segments CSV ``video,start_s,end_s,label`` with label
``tremor``; frames outside every segment are ``none``. ``video`` names a sequence as its JSON
files do, the part before ``_<12-digit frame>_keypoints.json`` (``Kick_1`` for
``Kick_1_000000000000_keypoints.json``), not as the video file (``Kick 1.mp4``); it is the
first column whatever ``--id_column`` says (that flag is for ``--label_csv``) and goes through
``--id_template`` (default ``{id}``: as written); ``start_s``/``end_s`` are seconds from the
sequence's start; a sequence without a row is quarantined (``unknown_label``). The build
keeps one person (highest confidence) and 10 BODY_25 points, the ``arms`` and ``torso``
groups (shoulders, elbows, wrists, neck, mid/left/right hip), as x, y (normalised to [0, 1])
and confidence: 30 features per frame. It writes whole sequences; the reader cuts 90-frame windows (training: one random
window per sequence; evaluation: every window, back to back). 20% of the videos go to val:

    python -m pipeline.build --dataset openpose --data_dir ~/data/tremor/openpose \
        --output_dir records --video_dir ~/data/tremor/videos \
        --segments_csv ~/data/tremor/segments.csv --keypoints arms,torso --coords xyc \
        --val_fraction 0.2
    python -m trainers.train --config configs/keypoint_lstm_bilstm_ensemble.py \
        --workdir runs/keypoint_lstm_bilstm_ensemble

It prints ``[train] keypoint_rnn on records/openpose/confidence1p_xyc_arms-torso_norm
(keypoints, 2 classes), input (90, 30), precision mixed_float16, 1 replica(s), S steps x 50
epochs of batch 32``, one line per epoch, then ``[train] best epoch N: val accuracy A, loss L
(Ts training)``: A is the frame-wise accuracy of the tremor/none sigmoid over labelled frames
(padding frames weigh 0), and L the mean cross-entropy over the same frames, as
``python -m trainers.evaluate --workdir runs/keypoint_lstm_bilstm_ensemble`` (its val split)
reports them. Not measured with this code yet: record it here.

keypoint_rnn's "ensemble" variant: the weighted mean (0.8, 0.2) of two members, each
[LSTM 180 → Dropout → BatchNorm] x 3 (dropouts 0.2, 0.2, 0.5; recurrent dropout 0.2, so no
cuDNN kernel) → Dense 180 → Dense 45 → Dense 1 sigmoid per frame; the second member wraps
every LSTM in Bidirectional.

``:runlocal`` reads an 8-video-per-split build, 30-frame windows, 2 epochs of 2 steps of batch
2 (float32). Measured in one run of ``benchmarks/configs_bench.py`` (2-core CPU, 2026-12-01) on
a stand-in dataset of the real OpenPose JSON of the 20 soccer kicks in ../shared/fixtures/real,
1.0-2.0 s of each marked ``tremor``: build 6 s, train 64 s, evaluate 14 s; val frame accuracy
0.71 at the best epoch and from ``trainers.evaluate`` (answering ``none`` everywhere scores
0.66): smoke-run numbers, not a quality claim:

    python -m pipeline.build --dataset openpose --data_dir ~/data/tremor/openpose \
        --output_dir records --video_dir ~/data/tremor/videos \
        --segments_csv ~/data/tremor/segments.csv --keypoints arms,torso --coords xyc \
        --val_fraction 0.2 --max_examples_per_split 8 \
        --config_name confidence1p_xyc_arms-torso_norm_tiny
    python -m trainers.train --config configs/keypoint_lstm_bilstm_ensemble.py:runlocal \
        --workdir /tmp/run_keypoint_lstm_bilstm_ensemble
    python -m trainers.evaluate --workdir /tmp/run_keypoint_lstm_bilstm_ensemble
"""
from configs import common

BUILD = "records/openpose/confidence1p_xyc_arms-torso_norm"


def get_config(arg=None):
    return common.experiment(
        model_name="keypoint_rnn",
        model=dict(variant="ensemble"),   # 0.8 x LSTM + 0.2 x BiLSTM
        data=dict(build_dir=BUILD, eval_split="val", num_classes=2, modality="keypoints",
                  window=90, window_shift=0, target="frames", shuffle_buffer=256),
        train=dict(batch_size=32, epochs=50, learning_rate=1e-3, schedule="plateau",
                   early_stopping_patience=10),
        runlocal=common.parse_arg(arg),
        runlocal_overrides=dict(data=dict(build_dir=BUILD + "_tiny", window=30)))
