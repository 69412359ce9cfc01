"""Stage 1, EDF -> epochs: read recordings (MNE), download and synthesize corpora, filter, cut and cache epochs."""
