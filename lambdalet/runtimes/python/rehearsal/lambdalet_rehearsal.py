"""The stand-in handler a zygote's spare runs once before it is given a function (bootstrap.rehearse)."""


def handler(event, context):
    return {"event": event, "request": context.aws_request_id}
