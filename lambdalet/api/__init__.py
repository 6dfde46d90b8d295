"""The HTTP surface: Lambda's REST API, one module per resource group."""
