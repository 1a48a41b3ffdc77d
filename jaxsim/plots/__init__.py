"""Figures: one module per topic, matplotlib with the Agg backend."""
