"""The console at ``/console``: the engine for people (auditors, CRM operators, account
managers), served by the same app as the API, from the same read side, under the same
roles.

Pages are rendered on the server (Jinja2 templates in ``templates/``); there is no build
step. The only script (``static/console.js``) exists for the API key: the key is entered
once per browser tab, kept in ``sessionStorage`` and sent with ``fetch`` as the bearer
key, never in a URL. So every page is two requests: the shell (``/console/…``, the same
for every page, no key needed: it holds nothing) and the page's content, an HTML
fragment from ``/console/fragments/…`` (the same path after ``/console``), fetched with
the key and put into the shell's ``<main>``. Links and forms are ordinary links and GET
forms to console pages, so the browser's history, bookmarks and keyboard work as ever.

Roles are the API's: readers see summaries, stage history, the stage at a date, the
funnel and managers' books; auditors and admins also the event timeline (hashes, seal,
verification) with personal data, and the dead letters. A role not allowed a page gets
the API's 403, which the shell shows.
"""

from projections.api.routes.console.pages import router

__all__ = ["router"]
