"""MongoDB storage of the form service (database `crm_form`): documents and the repository."""
