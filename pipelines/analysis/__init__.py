"""Analysis of fitted models: prediction scores and related measures."""
