"""Gradio components and their wiring to the view functions; no maths, no model calls."""
