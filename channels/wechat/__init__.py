"""The WeChat Official Account channel (微信公众号): verify, decrypt, parse, hand to the gateway,
answer passively within the reply budget. Routes are mounted by `server/app.py`."""
