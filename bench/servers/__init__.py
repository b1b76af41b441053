"""The four mail servers the bench drives, each started from its own tree."""
