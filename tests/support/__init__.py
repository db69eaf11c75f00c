"""Test support: the Synthflow API model and the scripted AGI peer."""
