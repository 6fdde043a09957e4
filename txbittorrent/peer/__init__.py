"""One peer connection over Twisted: the protocol adapter, link timers and throttles."""
