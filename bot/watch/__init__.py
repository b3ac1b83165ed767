"""The spend-spike watch: what is usual per category and time of day, and when a rate is not.

docs/WATCH.md explains the method.
"""
