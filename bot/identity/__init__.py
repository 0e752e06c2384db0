"""Who is speaking: channel bindings and one-time-code linking, sealed sender facts,
proxies, inbound rate limits, officer accounts.
"""
