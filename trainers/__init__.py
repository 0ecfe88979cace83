"""Model families, training, evaluation, prediction, serving and export."""
from pipeline import hide_optional_gcp_notice

hide_optional_gcp_notice()   # before any trainer imports Beam
