"""Tests of the graphc command."""
