"""The operator console: server-rendered pages over the job store, served by the Function App itself.

No JavaScript and no build step: every page is HTML from a Jinja2 template (autoescaped), every action
is a form POST. It sits behind App Service authentication like the operator API, but it never takes a
function key (a browser would have to carry it in a URL): a page answers only to a caller the platform
authenticated, with the Reader or Operator app role. See ``security`` for the headers and the
cross-site request forgery check, ``views`` for what each page shows.
"""
