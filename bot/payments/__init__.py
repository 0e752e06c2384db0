"""Fees paid in the conversation: the payment request of a submitted dossier (VietQR, and a
pay link when the provincial payment platform is configured), signed payment callbacks, the
receipt, the reminder of an unpaid fee, and the online-payment rate of the plan.
"""
