"""tiny-lm: a mixture search whose proxy runs are real training runs of small byte-level transformers."""
