"""The embedded default: a tiny pretrained base model and a CPU demo of the paper's Tables 1 and 4."""
