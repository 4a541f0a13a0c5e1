"""Prefix-tuning methods: configuration, parameters, injection into a frozen model."""
