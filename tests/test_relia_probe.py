import signal


def test_probe_sigint_disposition():
    print("SIGINT disposition before test_reliability:", signal.getsignal(signal.SIGINT))
