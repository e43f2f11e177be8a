"""Text corpora for calibration and evaluation, kept on local disk so nothing needs the network after set-up.

`clone.data.fetch` prepares the corpora once (`python -m clone.data.fetch`, run by `make setup`);
`clone.data.corpora` reads them as documents with a fixed train/validation/test split;
`clone.data.tokens` caches tokenized splits; `clone.data.calibration` samples seeded windows for
the optimizer.
"""
