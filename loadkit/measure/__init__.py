"""Measurement and judgement: histograms, the recorder, typed figures, the verdict, summary.json."""
