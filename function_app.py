"""The Function App: builds the app and registers one blueprint per trigger family, nothing else."""

import azure.functions as func

from autoremediation.blueprints.health import bp as health

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health)
