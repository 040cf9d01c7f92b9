"""Infrastructure for the GAN assignment: data, checks, metrics and plots.

Students do not edit anything in this package.
"""
