"""Model evaluation: perplexity with its protocol (window, stride, split, token count) reported alongside."""
