"""Data validation: reading raw partitions safely, Great Expectations suites, schema inference."""
