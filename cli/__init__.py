"""The command line's own modules (train.py, inference.py): flags and checkpoints. Not shipped to students."""
