"""Where the pipeline's files live, relative to the repository root, and the constants several packages share.

dvc.yaml names the same paths as the stages' deps and outs; tests/test_paths.py checks that the two agree.
"""

# Data: the downloads, and what stages derive from them.
RAW = "data/raw"  # the dataset's four IDX files
OOD = "data/ood"  # the out-of-distribution dataset's
CORRUPTED = "data/corrupted"  # {val,test}.safetensors: the corruptions of validation and test images
CLUSTERS = "data/clusters.safetensors"  # the headline clustering and the 2-D map of the test codes
COMPRESSED = "data/compressed/test.vbb"  # the test set, bits-back coded
LOSSY = "data/compressed/lossy"  # the test set, lossy coded, a file a quantisation step

# Models.
VAE = "models/vae.safetensors"
JUDGE = "models/judge.safetensors"
STYLE = "models/style.safetensors"
ANOMALY_DETECTOR = "models/anomaly_detector.safetensors"

# Training state, outside the stages' outputs: DVC deletes those before it re-runs a stage.
TRAIN_CHECKPOINT = "checkpoints/train/state.safetensors"
TRAIN_LIVE_IN_PROGRESS = "checkpoints/train/live"  # the curves until training ends
STYLE_CHECKPOINT = "checkpoints/style/state.safetensors"

# Metrics and figures.
TRAIN_LIVE = "metrics/train"  # dvclive's curves and summary of the train stage
EXPLORER = "plots/explorer"  # the latent-space page
TOLERANCES = "studies/variation/tolerances.json"  # how far a run's metrics may be from the committed ones


def metrics(stage: str) -> str:
    """A stage's metrics file, e.g. metrics/evaluate.json."""
    return f"metrics/{stage}.json"


def plots(stage: str) -> str:
    """The folder of a stage's figures and plot data, e.g. plots/evaluate."""
    return f"plots/{stage}"


# Shared constants.
DATASET_NAMES = ("mnist", "fashion-mnist")
IMAGE_SIDE = 28  # both datasets' images are 28 x 28 grey levels
IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE
CLASSES = 10  # both datasets have ten classes
TYPICALITY_COMPONENTS = 8  # Gaussians of the anomaly detector's density of per-image statistics
