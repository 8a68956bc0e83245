"""Sphinx configuration of the workshop site (`make site`): the executed notebooks and the docs,
rendered with their stored outputs by MyST-NB (nothing is executed here) in the book theme.

`make site` lays the pages out in build/book (the executed notebooks in notebooks/, the pages of
docs/ in docs/, solutions/ for teaching notes that link a solution file, this folder's index.md at
the top), so a relative link that works in the repository
(`[zero point](00_primer.ipynb)`, `[glossary](../docs/glossary.md)`) works on the site, and builds
the HTML into build/site with warnings as errors: a link to a page or file that is not there fails
the build. Nothing is fetched at build time.
"""

project = "qlab workshop"
author = "qlab"
copyright = "qlab contributors"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["**/.ipynb_checkpoints"]

# MyST: `$…$` maths as in Jupyter; headings get anchors, so `[x](page.md#a-heading)` resolves
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4

# MyST-NB: show the outputs the test run stored; never run a kernel
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # widgets (progress bars, the explorer): no widget manager fetched from a CDN

html_theme = "sphinx_book_theme"
html_title = "qlab workshop"
html_theme_options = {
    "show_toc_level": 2,
    # a download button would offer the executed copy's source: learners open notebooks/ in Jupyter
    "use_download_button": False,
    "home_page_in_toc": True,
}
html_show_sourcelink = False
html_copy_source = False
