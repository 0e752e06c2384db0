"""When a service is due (the one implementation of the trigger rules), reminder
preferences and texts.
"""
