"""Onboarding a stranger's data by config alone: ``sluice init`` drafts a model config from what landed
(:mod:`sluice.onboarding.draft`), and the config reference page is generated from the config models
(:mod:`sluice.onboarding.reference`), so what a reviewer reads cannot drift from what is validated."""
