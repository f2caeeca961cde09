"""Reading the store back: the HTML report, its data, figures and templates, and plan summaries."""
