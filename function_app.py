"""The Function App: builds the app and registers one blueprint per trigger family, nothing else."""

import azure.functions as func

from autoremediation.blueprints.alerts import bp as alerts
from autoremediation.blueprints.api import bp as operator_api
from autoremediation.blueprints.campaigns import bp as campaigns
from autoremediation.blueprints.console import bp as console
from autoremediation.blueprints.events import bp as events
from autoremediation.blueprints.health import bp as health
from autoremediation.blueprints.housekeeping import bp as sweeper
from autoremediation.blueprints.openapi import bp as openapi
from autoremediation.blueprints.queue_worker import bp as worker

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (health, openapi, alerts, events, operator_api, campaigns, console, worker, sweeper):
    app.register_functions(blueprint)
