"""One module per command; ``sadcli.cli`` joins them. Commands only parse, open files, call the
library and render: the work lives in the library packages."""
