"""Report writers: JSON of every figure, a Markdown page, PNG plots (matplotlib, Agg)."""
