"""What people read and look at: the plan and summary in words (`text`), and the campaign report (`build`:
plot, HTML, Markdown). Import the module you need: the package itself loads nothing, so reading a ledger does
not pay for the report."""
