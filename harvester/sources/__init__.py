"""Sources: each turns a query task into image rows and knows how to fetch its images."""
