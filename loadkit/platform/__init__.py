"""Helpers for scenario locustfiles: platform clients, login, populations, funnels, user classes."""
