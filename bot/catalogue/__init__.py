"""The service catalogue (the 16 services, their triggers, fields and texts) and the
answers written from it.
"""
