"""``make bench``: budgets as ratios against a baseline measured in the same run."""
