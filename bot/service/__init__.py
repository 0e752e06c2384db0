"""Service to citizens beyond procedures: fallback, hand-offs to officers,
satisfaction, reading short replies.
"""
