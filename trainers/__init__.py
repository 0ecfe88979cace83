"""Model families, training, evaluation, prediction, serving and export."""
import pipeline  # noqa: F401  (its logging filter must be in place before Beam is imported)
