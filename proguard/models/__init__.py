"""Policies proguard builds itself: the tiny in-process Qwen2.5-VL of the quick start and the tests."""
