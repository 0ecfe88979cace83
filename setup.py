"""actionflow: video and pose action recognition on TensorFlow.

Install for development and tests with ``pip install -e .[test]``; on a CUDA
machine use ``pip install -e .[gpu]`` for the GPU build of the same TensorFlow.
"""
from setuptools import find_packages, setup

# Pins and their reasons are explained in BUILD.md ("Dependencies"):
# tensorflow-io 0.37.1 loads its ops only against TF 2.17; TF 2.17 needs
# numpy<2; numpy<2 rules out OpenCV 5.
TENSORFLOW = "tensorflow==2.17.1"
INSTALL_REQUIRES = [
    TENSORFLOW,
    "tensorflow-io==0.37.1",
    "keras==3.15.1",          # the Keras 3 the tests ran with (TF 2.17 accepts any 3.x)
    "numpy>=1.26,<2",
    "opencv-python-headless==4.10.0.84",
    "apache-beam==2.77.0",
    "tensorflow-hub==0.16.1",  # imported by Beam's TensorFlow RunInference handler
    "tf-keras==2.17.0",        # needed by tensorflow-hub; the release matching TF 2.17
    "google-crc32c>=1.5,<2",
    "orjson>=3.9,<4",         # OpenPose JSON: several times the standard parser's speed
    "absl-py>=2.1,<3",
    "ml-collections>=1.0,<2",
    "matplotlib>=3.8,<4",
    "pillow>=9",              # pipeline.show and the upload page draw with it (matplotlib needs it too)
    "flask>=3.0,<4",          # python -m trainers.serve: the upload page and JSON API
]

# The console commands: each runs its module as ``python -m`` does (pipeline/commands.py,
# trainers/commands.py); ``python -m`` stays the documented way.
COMMANDS = {
    "actionflow-build": "pipeline.commands:build",
    "actionflow-verify": "pipeline.commands:verify",
    "actionflow-show": "pipeline.commands:show",
    "actionflow-demo": "pipeline.commands:demo",
    "actionflow-train": "trainers.commands:train",
    "actionflow-evaluate": "trainers.commands:evaluate",
    "actionflow-beam-evaluate": "trainers.commands:beam_evaluate",
    "actionflow-compare": "trainers.commands:compare",
    "actionflow-predict": "trainers.commands:predict",
    "actionflow-serve": "trainers.commands:serve",
    "actionflow-export": "trainers.commands:export",
}

# Beam 2.77's Dask runner needs dask and distributed 2024.4.2 or later.
DASK = ["dask[distributed]>=2024.4.2,<2027"]

setup(
    name="actionflow",
    version="0.1.0",
    description="Video and pose action recognition on TensorFlow: Beam build to "
    "TFRecords, tf.data readers, trainers and evaluation.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["pipeline", "pipeline.*", "trainers", "trainers.*",
                                    "tfrecords", "tfrecords.*", "configs", "configs.*"]),
    install_requires=INSTALL_REQUIRES,
    entry_points={"console_scripts": [f"{name} = {target}"
                                      for name, target in COMMANDS.items()]},
    extras_require={
        "test": ["pytest>=8,<10",
                 "pytest-xdist>=3.5,<4",  # the README's test command runs two files at a time
                 "av>=12,<19",            # writes variable-frame-rate test videos
                 "moto[server]>=5,<6",    # a local S3-compatible server for s3:// tests
                 "boto3>=1.34,<2",
                 "selenium>=4.20,<5",     # drives Debian's chromium + chromedriver (no downloads)
                 *DASK],                  # the cluster tests start a Dask scheduler and workers
        "dask": DASK,                     # --runner DaskRunner (pipeline.dask_runner)
        "gpu": ["tensorflow[and-cuda]==2.17.1"],
    },
    license="Apache-2.0",
)
