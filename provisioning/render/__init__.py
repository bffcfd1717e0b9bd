"""Rendering phones' files from the family templates, safely for each output format."""
