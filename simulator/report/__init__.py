"""report: text, plots, the course's figures and the tour."""
