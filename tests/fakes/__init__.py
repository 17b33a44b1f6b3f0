"""Local fakes of the model services, speaking their documented HTTP protocols on 127.0.0.1."""
